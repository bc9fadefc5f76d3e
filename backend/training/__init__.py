"""Training: the loop, checkpoints, trained artifacts and the few-shot seeds sweep."""
from backend.training.artifacts import load_trained, read_run_meta, save_trained
from backend.training.events import MemorySink, Sink, TeeSink, TerminalSink
from backend.training.run import RunData, TrainResult, run_training

__all__ = ["MemorySink", "RunData", "Sink", "TeeSink", "TerminalSink", "TrainResult", "load_trained",
           "read_run_meta", "run_training", "save_trained"]
