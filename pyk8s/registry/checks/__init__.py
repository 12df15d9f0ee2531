"""Semantic checks of built-in kinds, one module per API group (or part of one).

Role: the per-kind ``Validate``/``ValidateUpdate`` functions of upstream's
``pkg/apis/<group>/validation`` that ``registry/semantic.py`` dispatches to.
Invariant: every check takes plain JSON dicts and returns ``FieldError`` lists;
none mutates its input.
"""
