"""Evaluation: answer checking, metrics, reports (one schema for every method) and plots."""
