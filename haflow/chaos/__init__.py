"""The chaos harness: a real multi-node haflow cluster in Docker (`cluster`, `spec`, `image`,
`docker`), fault injection as a library (`faults`), the recorded history (`history`, `model`),
the checker that judges the properties P1..P12 of docs/design.md section 4 from it alone
(`checker`, `report`), and the scenarios runner (`scenario`, `workload`). The scenarios live in
`chaos/scenarios/`.
"""
