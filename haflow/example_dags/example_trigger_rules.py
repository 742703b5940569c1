"""Trigger rules, as in Airflow: what runs after a branch was skipped, once everything is done,
or whatever happened upstream."""

from datetime import datetime

from haflow import DAG, BashTask, TriggerRule

with DAG("example_trigger_rules", schedule=None, start_date=datetime(2026, 1, 1), tags=["example"]):
    load = BashTask("load", bash_command="echo loaded")
    # runs only when an upstream failed: here it is skipped
    alert = BashTask("alert", bash_command="echo load failed", trigger_rule=TriggerRule.ONE_FAILED)
    # runs when nothing failed and at least one upstream succeeded (the skip is no failure)
    publish = BashTask(
        "publish", bash_command="echo published", trigger_rule="none_failed_min_one_success"
    )
    # runs once every upstream ended, whatever they ended as
    cleanup = BashTask("cleanup", bash_command="echo cleanup", trigger_rule=TriggerRule.ALL_DONE)
    # runs only when every upstream was skipped
    quiet = BashTask("quiet", bash_command="echo nothing to alert", trigger_rule="all_skipped")
    # runs whatever happens upstream, even before it ends
    audit = BashTask("audit", bash_command="echo audited", trigger_rule="always")
    load >> alert >> [publish, quiet]
    load >> publish
    [publish, alert] >> cleanup
    load >> audit
