"""The chaos harness: a real multi-node haflow cluster in Docker (`cluster`, `spec`, `image`,
`docker`), fault injection as a library (`faults`), the recorded history (`history`, `model`),
the checker that judges DESIGN.md's properties P1..P9 from it alone (`checker`, `report`), and
the scenarios runner (`scenario`, `workload`). The scenarios live in `chaos/scenarios/`.
"""
