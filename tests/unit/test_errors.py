from __future__ import annotations

import pytest

from collab.errors import CloseCode, CollabError, Reject


def test_reject_keeps_known_and_application_codes():
    assert Reject(4403, "no").code == CloseCode.FORBIDDEN
    assert Reject(4001, "maintenance").code == 4001
    assert Reject(3000).code == 3000


@pytest.mark.parametrize("code", [999, 1004, 1005, 1006, 1015, 2000, 5000])
def test_reject_refuses_codes_a_server_may_not_send(code):
    with pytest.raises(ValueError):
        Reject(code)


def test_reasons_are_cut_to_fit_a_close_frame():
    reason = CollabError("é" * 200).reason
    assert len(reason.encode()) <= 120 and reason == "é" * 60
