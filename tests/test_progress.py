"""genarch.progress: a tqdm bar on a terminal, plain periodic lines anywhere else."""

from __future__ import annotations

import io

import pytest

from genarch.errors import InvalidInputError
from genarch.progress import Progress, is_interactive


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_log_gets_one_plain_line_per_interval_and_a_last_one() -> None:
    log, clock = io.StringIO(), Clock()
    with Progress(total=100, stream=log, interval=10, clock=clock) as progress:
        for step in range(1, 101):
            clock.now = step * 1.0  # one second per step
            progress.update(loss=f"{1 / step:.2f}")
    output = log.getvalue()
    assert "\r" not in output
    lines = output.splitlines()
    # the first update, then every 10 s (steps 11, 21, ... 91), then the close
    assert [line.split()[1] for line in lines] == [f"{n}/100" for n in (1, *range(11, 100, 10))] + [
        "100/100"
    ]
    assert lines[0] == "step 1/100 (1%) loss=1.00 elapsed=1.0s"
    assert lines[-1] == "step 100/100 (100%) loss=0.01 elapsed=100.0s"


def test_a_terminal_gets_a_tqdm_bar() -> None:
    terminal = Terminal()
    with Progress(total=3, stream=terminal) as progress:
        for _ in range(3):
            progress.update(loss="0.5")
    assert "\r" in terminal.getvalue()
    assert "3/3" in terminal.getvalue()


def test_disabled_progress_writes_nothing_but_still_counts() -> None:
    for stream in (io.StringIO(), Terminal()):
        with Progress(total=3, stream=stream, enabled=False) as progress:
            progress.update(2)
        assert stream.getvalue() == ""
        assert progress.count == 2


def test_a_resumed_run_counts_from_initial_and_closing_unmoved_writes_nothing() -> None:
    log = io.StringIO()
    Progress(total=10, initial=4, stream=log).close()
    assert log.getvalue() == ""
    with Progress(total=10, initial=4, stream=log) as progress:
        progress.update()
    assert log.getvalue().startswith("step 5/10 (50%)")


def test_a_closed_or_odd_stream_is_not_interactive() -> None:
    closed = io.StringIO()
    closed.close()
    assert not is_interactive(closed)
    assert not is_interactive(object())  # type: ignore[arg-type]
    assert is_interactive(Terminal())


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"total": -1}, "total must be an int >= 0, got int: -1"),
        ({"total": 2.5}, "total must be an int >= 0, got float: 2.5"),
        ({"total": 3, "initial": True}, "initial must be an int >= 0"),
        ({"total": 3, "interval": 0}, "interval must be a positive finite number"),
        ({"total": 3, "interval": float("inf")}, "interval must be a positive finite number"),
    ],
)
def test_bad_arguments_raise_invalid_input_naming_them(
    fields: dict[str, object], match: str
) -> None:
    with pytest.raises(InvalidInputError, match=match):
        Progress(**fields)  # type: ignore[arg-type]
