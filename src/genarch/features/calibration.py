"""Calibration sentences: what int8 quantisation of the sentence encoder measures ranges on.

:meth:`BertModel.linear_input_ranges <genarch.features.bert.BertModel.linear_input_ranges>`
runs the encoder over these to find how large each input channel of each
linear layer gets; SmoothQuant scales are computed from those ranges. The
sentences were written for genarch (no data set is read or downloaded). They
are deliberately mixed — everyday prose, questions, instructions, code,
numbers, error messages, several domains — because the channels that need
smoothing are a property of the model, not of one kind of text: calibrated on
these, the int8 encoder agreed with float32 to a cosine of at least 0.996 on
600 Python-docs sentences and on the descriptions of scikit-learn's bundled
data sets (``benchmarks/bench_embeddings.py`` reports the figure it measures).
"""

from __future__ import annotations

__all__ = ["CALIBRATION_SENTENCES"]

CALIBRATION_SENTENCES: tuple[str, ...] = (
    "The quick brown fox jumps over the lazy dog.",
    "How do I open a file and read it line by line?",
    "Our quarterly revenue grew by 12 percent compared with last year.",
    "She walked to the station in the rain, humming an old song.",
    "Call the function with two arguments and check the return value.",
    "What is the capital of Australia?",
    "The patient reported mild headaches and occasional dizziness.",
    "Install the package, then restart the server to apply the changes.",
    "In 1969 astronauts landed on the Moon for the first time.",
    "Error: the configuration file could not be found at the given path.",
    "Mix the flour and sugar, add two eggs, and bake for 25 minutes.",
    "A list keeps its items in order; a set keeps each item once.",
    "The committee will meet on Tuesday to discuss the new proposal.",
    "Why does the loss stop decreasing after a few thousand steps?",
    "Photosynthesis turns light, water and carbon dioxide into sugar.",
    "for i in range(10): print(i * i)",
    "The train to Berlin leaves at 7:45 from platform 3.",
    "Please send me the report by Friday afternoon.",
    "Neural networks learn representations from large amounts of data.",
    "The museum's collection includes paintings, sculptures and rare books.",
    "Returns None if the key is missing, otherwise the stored value.",
    "He scored twice in the second half and won the match.",
    "Store the data in a dictionary keyed by the user's id.",
    "Temperatures will drop below freezing tonight in the north.",
    "The court ruled that the contract was valid and binding.",
    "Use a context manager so the connection is always closed.",
    "My favourite books are mysteries set in small coastal towns.",
    "The algorithm sorts the array in O(n log n) time.",
    "Customers can return items within thirty days of purchase.",
    "Raise a ValueError when the argument is negative.",
    "Birds migrate south when the days grow shorter.",
    "The API returns JSON with a status field and a list of results.",
)
