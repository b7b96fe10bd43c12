"""Report stage: metric JSONs → tidy table → tables, seaborn figures, claims report.

Modules: ``aggregate`` (JSONs → table.csv, K and recipe read from each model block), ``ci``
(t-intervals over replicates, seed-level spread), ``paired`` (image-level bootstrap and the
two-level interval over training seeds and images), ``comparisons`` (which arms → paired.csv),
``tables`` (CSV / Markdown / LaTeX), ``figures`` (PNG + PDF), ``grid`` (fixed-latent sample grid),
``claims`` (C1–C9 rules → verdicts), ``stability`` (leave-one-seed-out recomputations), ``page``
(claims.md / claims.html). CLI: ``python -m e2ed2.report``.
"""
