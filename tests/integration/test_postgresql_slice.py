"""A representative slice of the integration suite, run again with every
daemon on a PostgreSQL store: publishing, views, apubictl's store
commands, retries, notifications, ordering and faults behave the same as
on SQLite.

The tests are the suite's own, imported from their modules; the fixtures
below replace `make_daemon` and `daemon` so that every daemon a test
starts names a new database on one PostgreSQL server started for this
module (the daemons of one test share theirs).
"""
import pytest

from conftest import Daemon
from pg import PostgresServer

from test_publish import (  # noqa: F401
    test_published_file_is_byte_identical_and_status_names_its_location,
    test_nested_directory_is_published_with_structure_and_names_preserved,
    test_single_file_with_non_ascii_name_is_published_and_purged,
    test_republishing_a_directory_replaces_it,
    test_purge_removes_exactly_the_file_status_returned,
)
from test_views import (  # noqa: F401
    retried_load,
    test_json_view_of_a_load_retried_once,
    test_list_pages_through_every_task_once_and_filters_hold,
)
from test_apubictl import (  # noqa: F401
    test_show_of_failed_task_says_why,
    test_retry_of_failed_task_requeues_it_and_it_succeeds_once_fixed,
    test_cancel_of_queued_and_running_tasks,
)
from test_notify import (  # noqa: F401
    receivers,
    test_successful_load_is_posted_once_with_its_items,
    test_receiver_down_at_first_gets_it_later,
)
from test_order import (  # noqa: F401
    test_purge_sent_while_the_package_loads_leaves_nothing,
    test_two_loads_of_one_destination_the_later_ones_bytes_stay,
    test_a_load_waiting_to_retry_holds_newer_tasks,
    test_operator_retry_goes_behind_tasks_accepted_before_it,
)
from test_metrics import (  # noqa: F401
    test_a_task_waiting_to_retry_counts_in_the_gauges_and_error_counters,
)


@pytest.fixture(scope="module")
def pg(tmp_path_factory):
    server = PostgresServer(tmp_path_factory.mktemp("pg"))
    server.start()
    yield server
    server.close()


_databases = [0]


@pytest.fixture
def make_daemon(tmp_path, request, pg):
    """conftest's make_daemon, each daemon's [store] url naming this
    test's database."""
    _databases[0] += 1
    url = pg.create_database(f"slice_{_databases[0]}")
    daemons = []
    request.node._apubid_daemons = daemons

    def make(sub=None, start=True, **overrides):
        overrides["store"] = {**overrides.get("store", {}), "url": url}
        d = Daemon(tmp_path / (sub or f"d{len(daemons)}"), overrides)
        daemons.append(d)
        return d.start() if start else d

    yield make
    problems = []
    for d in daemons:
        if d.proc is None:
            continue
        rc = d.stop()
        if rc != 0:
            problems.append(f"apubid in {d.tmp} exited {rc} on SIGTERM\n{d.log_tail()}")
    if problems:
        pytest.fail("\n".join(problems))


@pytest.fixture
def daemon(make_daemon):
    return make_daemon()
