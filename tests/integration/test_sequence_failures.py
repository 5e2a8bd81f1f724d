"""A crashed instance ends the sequences it held (UNAVAILABLE naming it, until a new START);
the other instance's sequences go on (issue 11, "Failure")."""
from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.integration.seq_repo import ACCUMULATOR_PY, IO, _controls, _model, write_pid_model
from tests.server import Server


def infer(client, cid, start=False, end=False):
    inp = httpclient.InferInput("INPUT", [1, 1], "INT32")
    inp.set_data_from_numpy(np.zeros((1, 1), np.int32))
    result = client.infer("seq_pid", [inp], sequence_id=cid, sequence_start=start,
                          sequence_end=end)
    return int(result.as_numpy("OUTPUT")[0][0])


def test_a_crashed_instance_fails_its_sequences_only(tmp_path):
    srv = Server([write_pid_model(tmp_path)])
    try:
        client = httpclient.InferenceServerClient(srv.url)
        pid_a = infer(client, 1, start=True)
        pid_b = infer(client, 2, start=True)
        assert pid_a != pid_b                      # one slot per instance: one each
        os.kill(pid_a, signal.SIGKILL)
        messages = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with pytest.raises(InferenceServerException) as err:
                infer(client, 1)
            messages.append(err.value.message())
            assert err.value.status() == "503", messages
            if "sequence was lost" in messages[-1]:
                break
            time.sleep(0.1)
        assert "inference request for sequence 1 to model 'seq_pid': the sequence was lost " \
               "with instance 'seq_pid_0_" in messages[-1]
        assert "start it again with the START flag" in messages[-1]
        assert infer(client, 2) == pid_b           # the other sequence never noticed
        assert infer(client, 2, end=True) == pid_b
        assert infer(client, 1, start=True) not in (pid_a,)   # a new START is served again
        assert infer(client, 1, end=True) != pid_a
    finally:
        assert srv.stop() == 0


def test_a_correlation_id_too_wide_for_an_int32_corrid_does_not_kill_the_instance(tmp_path):
    """A client's id past 2**31 to a CORRID of TYPE_INT32 (past 2**63 for TYPE_INT64) runs
    with the id's low bytes, as Triton's memcpy gives them; it killed the worker (numpy's
    OverflowError), failing the sequences of every client on that instance."""
    for name, dtype in (("seq_i32", "TYPE_INT32"), ("seq_i64", "TYPE_INT64")):
        _model(tmp_path, name, f"""backend: "python"
max_batch_size: 4
sequence_batching {{
  direct {{ }}
  {_controls(dtype)}
}}
{IO}""", ACCUMULATOR_PY)
    srv = Server([tmp_path])
    try:
        client = httpclient.InferenceServerClient(srv.url)

        def step(model, value, cid, start=False, end=False):
            inp = httpclient.InferInput("INPUT", [1, 1], "INT32")
            inp.set_data_from_numpy(np.full((1, 1), value, np.int32))
            result = client.infer(model, [inp], sequence_id=cid, sequence_start=start,
                                  sequence_end=end)
            return int(result.as_numpy("OUTPUT")[0][0])
        assert step("seq_i32", 1, 3, start=True) == 1                 # another client's
        assert step("seq_i32", 2, 2**40 + 5, start=True) == 2
        assert step("seq_i32", 3, 2**40 + 5, end=True) == 5 + 5       # the model saw 5
        assert step("seq_i32", 4, 3, end=True) == 5 + 3               # still in its slot
        assert step("seq_i64", 1, 2**63 + 1, start=True) == 1
        assert step("seq_i64", 2, 2**63 + 1) == 3    # (its END would add -2**63 + 1)
    finally:
        assert srv.stop() == 0


def test_sigterm_lets_live_sequences_finish(tmp_path):
    srv = Server([write_pid_model(tmp_path)], "--exit-timeout-secs=30")
    try:
        client = httpclient.InferenceServerClient(srv.url)
        pid = infer(client, 1, start=True)
        srv.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        with pytest.raises(InferenceServerException) as err:
            infer(client, 2, start=True)             # no new sequence
        assert err.value.status() == "503" and "shutting down" in err.value.message()
        assert infer(client, 1) == pid               # the live one goes on
        assert srv.proc.poll() is None
        t0 = time.monotonic()
        assert infer(client, 1, end=True) == pid
        assert srv.proc.wait(20) == 0 and time.monotonic() - t0 < 15
    finally:
        srv.stop()


def test_sigterm_lets_live_sequences_through_an_ensemble_finish(tmp_path):
    from tests.integration.seq_repo import write, write_ensemble
    from tests.integration.test_sequence_state import ens_infer

    srv = Server([write_ensemble(write(tmp_path))], "--exit-timeout-secs=30")
    try:
        client = httpclient.InferenceServerClient(srv.url)
        assert ens_infer(client, "ens_seq", 1, 9, start=True) == 2
        srv.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        with pytest.raises(InferenceServerException) as err:
            ens_infer(client, "ens_seq", 1, 10, start=True)       # no new sequence
        assert err.value.status() == "503" and "shutting down" in err.value.message()
        assert ens_infer(client, "ens_seq", 2, 9) == 6             # the live one goes on
        assert srv.proc.poll() is None
        assert ens_infer(client, "ens_seq", 3, 9, end=True) == 12
        assert srv.proc.wait(20) == 0
    finally:
        srv.stop()
