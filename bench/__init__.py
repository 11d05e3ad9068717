"""Benchmarks (`replydesk bench ...`); results are written as JSON under bench/results/."""
