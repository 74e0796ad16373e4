"""The orchestration layer: prompt templates, retrieval, chains and RAG."""
