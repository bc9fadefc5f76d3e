"""The prompt design workbench: several prompts scored on the same rows, compared with paired statistics."""
