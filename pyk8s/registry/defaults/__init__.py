"""Defaulting of built-in kinds, one module per API group.

Role: upstream's ``SetObjectDefaults_<Kind>`` (generated) and ``SetDefaults_*``
(hand-written) functions that ``registry/defaulting.py`` dispatches to.
Invariant: every function mutates the object in place, only filling fields that
are unset, so defaulting an already defaulted object changes nothing.
"""
