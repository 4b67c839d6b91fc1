"""Evaluation: metrics, benchmark tasks, the runner behind `lmforge eval`, reports with plots.

Modules (one concept each):

- ``metrics``            text metrics: SQuAD EM/F1, BLEU/chrF (sacrebleu), ROUGE (rouge-score)
- ``retrieval_metrics``  recall@k, MRR, nDCG@k with trec_eval conventions
- ``rag_metrics``        faithfulness, citation recall/precision, context utilisation,
                         refusal accuracy, latency percentiles
- ``perplexity``         sliding-window perplexity over a text file
- ``scoring``            log-likelihood scoring of continuations (batched, shared context)
- ``tasks``              declarative task files (multiple choice, generation, RAG)
- ``runner``             runs a task against a model and writes results.json + report.md
- ``report``, ``compare`` Markdown reports with plots; regression tables with bootstrap CIs

Heavy modules (torch, matplotlib) load only when used, so importing the metrics is cheap.
"""
