"""The ``retrain_gate`` component. Its source is embedded in the compiled spec: imports stay inside its body."""


def retrain_gate(action: str) -> str:
    """The monitor's action as this task's only output: kfp.local 2.17 evaluates a dsl.If only on a
    task's single output (not on a NamedTuple field), so the condition reads it from here."""
    return action
