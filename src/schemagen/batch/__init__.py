"""Batch drivers: online batches (``run``) and the OpenAI Batch API (``openai_batch``)."""
