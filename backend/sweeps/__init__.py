"""Sweeps: a grid (or a random sample of it) over methods, their options, shots, learning rates,
templates and seeds, run as ordinary recorded runs tagged ``sweep:<name>``.

``spec`` reads and checks a sweep; ``expand`` turns it into trials (one RunConfig each); ``local`` queues
them through the job queue; ``asha`` decides which runs stop early; ``table`` and ``pareto`` summarise the
stored runs; ``seeds`` is the in-process seeds sweep behind ``train --seeds``. Nothing is imported here,
so importing one part (the job worker asks ``supervise``) loads no other.
"""
