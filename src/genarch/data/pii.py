"""Split: detection is in :mod:`genarch.data.pii_detection`, redaction and
pseudonymisation in :mod:`genarch.data.pii_redaction`; all public names are in
:mod:`genarch.data`.
"""

from genarch._deprecated import moved_module

_DETECTION = "genarch.data.pii_detection"
_REDACTION = "genarch.data.pii_redaction"

__getattr__ = moved_module(
    __name__,
    {
        "PII_TYPES": _DETECTION,
        "PiiSpan": _DETECTION,
        "PiiType": _DETECTION,
        "find_pii": _DETECTION,
        "iban_checksum_ok": _DETECTION,
        "PiiRedactor": _REDACTION,
        "PiiRedactorConfig": _REDACTION,
        "Redaction": _REDACTION,
        "RedactionMode": _REDACTION,
        "deanonymize": _REDACTION,
        "redact_pii": _REDACTION,
    },
)
