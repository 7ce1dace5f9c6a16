"""A synthetic EK-100-format dataset (videos, CSVs) that the demo model can learn in minutes on a CPU."""
