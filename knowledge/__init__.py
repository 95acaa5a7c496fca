"""Course knowledge: PDF text, chunks, embeddings, the vector store and retrieval.

Modules, one concept each:

- :mod:`knowledge.pdf`: checked PDF text extraction, page by page, in a child process
  with time and memory limits (:mod:`knowledge._extract` is the child);
- :mod:`knowledge.chunking`: chunks of a few hundred words that keep page and heading;
- :mod:`knowledge.embedders`: the embedding interface and its three implementations;
- :mod:`knowledge.vectors`: chromadb (one collection per course), the document registry
  and the dead-letter records;
- :mod:`knowledge.blobs`: where uploaded files live (data directory or S3);
- :mod:`knowledge.fetch`: fetching a PDF by URL under the SSRF rules;
- :mod:`knowledge.ingest`: the job bodies (prefetch, index) shared by Celery and in-process;
- :mod:`knowledge.retriever`: the course retriever (vector plus lexical ranking);
- :mod:`knowledge.predictions`: typing predictions from headings and key phrases.
"""
