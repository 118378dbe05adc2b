"""Sampling the traffic: stratified samples with recorded inclusion probabilities."""
