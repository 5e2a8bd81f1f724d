"""frontend.inbox: which mapped worker segments belong to workers gone from the table."""
from tritond import messages
from tritond.frontend.inbox import dead_worker_regions


def test_segments_of_workers_no_longer_in_the_table():
    live = messages.InstanceEntry("\0tritond-abc-w1", "m_0", "CPU", 0)
    table = messages.ModelTable([messages.ModelEntry("m", 1, "READY", instances=[live])], True)
    regions = ["/tritond-abc-42-w1", "/tritond-abc-43-w2", "/tritond-abc-43-w2-x1",
               "/tritond-abc-44-frontend-0", "client-key"]
    assert dead_worker_regions(regions, table) == ["/tritond-abc-43-w2", "/tritond-abc-43-w2-x1"]
