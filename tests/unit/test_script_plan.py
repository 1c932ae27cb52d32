"""worker.script_plan on hand-written scripts in oasislmf's shapes (nothing is run).

Covers: the preamble's log directories; FIFOs, set-up actions and job groups in script
order; jobs put in data-flow order (a reader after its writer, whatever the script order);
summarypy -m's index FIFOs; the shapes that send a script to bash instead (an unknown
command, ``>>``, a FIFO read by nobody's writer, two writers, no ``exec_wait``).
"""

from __future__ import annotations

import pytest

from worker.script_plan import Job, Plan, Unsupported, order_jobs, parse

PREAMBLE = """\
#!/bin/bash
SCRIPT=$(readlink -f "$0") && cd $(dirname "$SCRIPT")
set -euET -o pipefail
LOG_DIR=log/2
mkdir -p $LOG_DIR
rm -R -f $LOG_DIR/*
export OASIS_PYTOOLS_LOG_DIR=$LOG_DIR

exec_wait(){
    wait "$@"
}
"""

BODY = """\
rm -R -f work/*
mkdir -p work/kat/
mkfifo fifo/il_P2
mkfifo fifo/il_S1_summary_P2
mkfifo fifo/il_S1_selt_ord_P2

# --- Do insured loss computes ---
( eltpy -E bin -s work/kat/il_S1_elt_sample_P2 < fifo/il_S1_selt_ord_P2 ) 2>> $LOG_DIR/e & pid1=$!
tee < fifo/il_S1_summary_P2 fifo/il_S1_selt_ord_P2 2.work/il_S1_summaryleccalc/P2.bin \\
    > /dev/null & pid2=$!
( summarypy -t il -1 fifo/il_S1_summary_P2 < fifo/il_P2 ) 2>> $LOG_DIR/e &
( ( evepy 2 2 | gulmc -a1 -S10 -L0 | fmpy -a2 > fifo/il_P2 ) 2>> $LOG_DIR/e ) & pid3=$!

exec_wait $pid1 $pid2 $pid3

check_fifos fifo/il_P2
rm -R -f fifo/
if [ -s $LOG_DIR/stderror.err ]; then
    echo "Error detected"
fi
"""


def _names(plan_or_jobs: Plan | list[Job]) -> list[str]:
    jobs = plan_or_jobs.jobs if isinstance(plan_or_jobs, Plan) else plan_or_jobs
    return [job.commands[0].argv[0] for job in jobs]


def test_a_chunk_script_becomes_actions_then_jobs_in_data_flow_order() -> None:
    plan = parse(PREAMBLE + BODY)
    assert plan.env == {"LOG_DIR": "log/2", "OASIS_PYTOOLS_LOG_DIR": "log/2"}
    assert plan.fifos == ["fifo/il_P2", "fifo/il_S1_summary_P2", "fifo/il_S1_selt_ord_P2"]
    # rm, mkdir, 3 x mkfifo, the job group, rm of the FIFO directory; the checks after
    # ``if [ -s $LOG_DIR/stderror.err ]`` are oasislmf's, not part of the plan
    kinds = ["jobs" if isinstance(step, list) else "action" for step in plan.steps]
    assert kinds == ["action"] * 5 + ["jobs", "action"]
    assert _names(plan) == ["evepy", "summarypy", "tee", "eltpy"]
    pipe = plan.jobs[0]
    assert [c.argv[0] for c in pipe.commands] == ["evepy", "gulmc", "fmpy"]
    assert pipe.commands[-1].stdout == "fifo/il_P2"
    assert pipe.writes == {"fifo/il_P2"}
    tee = plan.jobs[2]
    assert tee.reads == {"fifo/il_S1_summary_P2"}
    assert tee.writes == {"fifo/il_S1_selt_ord_P2"}  # the .bin file is not a FIFO


def test_summarypy_low_memory_writes_the_index_fifos_too() -> None:
    body = """\
mkfifo fifo/il_P1
mkfifo fifo/il_S1_summary_P1.bin
mkfifo fifo/il_S1_summary_P1.idx
( summarypy -m -t il -1 fifo/il_S1_summary_P1.bin < fifo/il_P1 ) 2>> log/e &
( ( evepy 1 1 | gulmc -a1 | fmpy -a2 > fifo/il_P1 ) 2>> log/e ) & pid1=$!
exec_wait $pid1
"""
    summary = parse(PREAMBLE + body).jobs[1]
    assert summary.writes == {"fifo/il_S1_summary_P1.bin", "fifo/il_S1_summary_P1.idx"}


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("( gulcalc -S10 < fifo/il_P2 > out.bin ) &", "command 'gulcalc'"),
        ("( evepy 2 2 >> out.bin ) &", "redirect '>>'"),
        ("( eltpy -s fifo/il_P2 < in.bin ) &", "names a FIFO in its arguments"),
        ("echo done", "line: echo done"),
    ],
)
def test_shapes_it_does_not_know_go_to_bash(line: str, reason: str) -> None:
    body = f"mkfifo fifo/il_P2\n{line}\nexec_wait\n"
    with pytest.raises(Unsupported, match=reason):
        parse(PREAMBLE + body)


def test_jobs_left_without_exec_wait_or_no_preamble_go_to_bash() -> None:
    with pytest.raises(Unsupported, match="not followed by exec_wait"):
        parse(PREAMBLE + "( evepy 1 1 > out.bin ) &\n")
    with pytest.raises(Unsupported, match="no exec_wait"):
        parse("( evepy 1 1 > out.bin ) &\nexec_wait\n")


def test_order_jobs_refuses_two_writers_and_a_cycle() -> None:
    def job(reads: set[str], writes: set[str]) -> Job:
        return Job(commands=[], reads=reads, writes=writes)

    with pytest.raises(Unsupported, match="two writers"):
        order_jobs([job(set(), {"f"}), job(set(), {"f"})])
    with pytest.raises(Unsupported, match="FIFO cycle or a FIFO nobody writes"):
        order_jobs([job({"a"}, {"b"}), job({"b"}, {"a"})])
    first, second = job({"a"}, set()), job(set(), {"a"})
    assert order_jobs([first, second]) == [second, first]
