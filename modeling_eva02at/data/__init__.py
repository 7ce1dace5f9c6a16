"""Annotation readers and datasets: EK-100 retrieval CSVs, soft relevancy, clip datasets and collators.

Data code knows nothing about losses: it yields clips, captions and the indices a loss needs to look relevancies up.
"""
