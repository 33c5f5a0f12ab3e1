"""Analysis of RGANet and FIRe² runs, outside the installed plugin: mechanism and region
measures against the generated ground truth (``mechanism``), parameter counts (``parameters``),
the comparison runner (``compare``) and the machine line the benchmarks print (``machine``).

It imports the plugin (``rganet_plugin``) and its generated world; the plugin never imports it.
Run from a repository checkout, e.g. ``python -m rganet_analysis.compare --configs ...``.
"""
