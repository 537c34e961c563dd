"""What is judged and how: the policy engine, bundled packs and compliance data.

Modules: catalog (chips -> 3A090 class), jurisdictions (dated lists), schema (pack DSL),
conditions (DSL -> predicates), loader (refs + validation), engine, cases/testing (policy cases).
"""
