"""Defaults that several layers and the CLI share, each written once (no torch, no imports: every layer may
import this module, and the CLI computes its option defaults and help from it)."""

MODEL = "smollm2-135m"  # the model a command uses when none is given (models.registry describes it)
# steering strengths tried on calibration prompts, in units of the median activation norm at the hook
STRENGTHS = (0.25, 0.5, 1.0, 2.0, 4.0)
STRENGTHS_TEXT = ",".join(f"{s:g}" for s in STRENGTHS)  # as a command line takes them: "0.25,0.5,1,2,4"
CONTROLS = 20  # random controls per feature and intervention kind (evidence.md rule 7: at least 20)
KL_BUDGET = 1.0  # nats: the mean next-token KL on unrelated prompts a steering strength may cost (rule 7)
# the help of the options that set them (the command line shows it beside each)
STRENGTHS_HELP = "Steering strengths tried on calibration prompts (units: median activation norm at the hook)."
KL_BUDGET_HELP = ("Steering: the largest mean next-token KL (nats) on unrelated prompts the chosen strength may cost "
                  "(the grid is extended downwards when its smallest strength costs more).")
