"""Measuring answers: answer-recall on a question set."""
