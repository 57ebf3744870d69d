"""Named, versioned task suites."""

from benchmarks.registry import register_suite
from benchmarks.tasks.metadata import Suite

PROPERTIES = ("digits-test-acc", "digits-ggap", "digits-epoch", "digits-hp-activation",
              "digits-hp-init", "digits-hp-optimizer")

register_suite(
    Suite(name="digits-properties", version=1, tasks=PROPERTIES,
          description="Property prediction on the digits CNN-s zoo (6 targets).")
)
register_suite(
    Suite(name="digits", version=1,
          tasks=(*PROPERTIES, "digits-init-same", "digits-init-transfer", "digits-generation"),
          description="All digits CNN-s tasks: properties, initialization, generation.")
)
