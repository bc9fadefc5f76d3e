"""Data loading: files, built-in demo sets and hub datasets -> checked Examples, k-shot samples."""
from backend.data.builtin import BUILTIN_DEFAULT, builtin_datasets
from backend.data.fingerprint import fingerprint
from backend.data.labels import class_index
from backend.data.loader import LoadedData, load_examples
from backend.data.mapping import MAX_FIELD_CHARS, ColumnMap
from backend.data.readers import load_rows
from backend.data.sampling import sample_k_shot

__all__ = ["BUILTIN_DEFAULT", "MAX_FIELD_CHARS", "ColumnMap", "LoadedData", "builtin_datasets", "class_index",
           "fingerprint", "load_examples", "load_rows", "sample_k_shot"]
