"""Clients of a cluster engine: the KFP API, schedules, the Argo Workflows engine."""
