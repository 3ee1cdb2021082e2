"""The web app in headless Chromium against a live `elasticthought serve` (1 worker): the
seed's alphabet flow from sign-up to a dropped image's top-1 label, with the loss plot growing
while the job trains; tenant isolation; user strings rendered as text; sign-out revoking the
token; the strict Content-Security-Policy; and the app without its charting library."""

from __future__ import annotations

import base64
import re
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.paths import DATA
from tests.support.server import LiveServer
from tests.web.browser import TRAIN_MS

pytestmark = pytest.mark.slow

ALPHABET = DATA / "alphabet.tar.gz"
SEED = DATA / "seed-examples" / "alphabet"
PASSWORD = "correct-horse-1"
XSS_NAME = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'
XSS_NET = "<img src=x onerror=window.__xss=3>"
DROPPED_LABEL = "W"
SERVER_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

# Loss points seen by the page while the job page says "processing": True once the chart
# gained points between two such looks (polled in the page; no sleeps).
LOSS_GROWS_WHILE_TRAINING = """() => {
  const chart = window.Chart && Chart.getChart('loss-chart');
  if (!chart || !chart.data.datasets.length) return false;
  const state = document.querySelector('#main dl.facts .state');
  const seen = (window.__lossSeen = window.__lossSeen || []);
  seen.push([chart.data.datasets[0].data.length, state ? state.textContent : '']);
  const during = seen.filter(([n, s]) => s === 'processing' && n > 0);
  return during.length >= 2 && during[during.length - 1][0] > during[0][0];
}"""

MAKE_DROP = """([b64, name]) => {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const transfer = new DataTransfer();
  transfer.items.add(new File([bytes], name, { type: 'image/png' }));
  return transfer;
}"""


def edit(text: str, **values: Any) -> str:
    """Prototxt with top-level `key: value` lines replaced."""
    for key, value in values.items():
        text, n = re.subn(rf"(?m)^{key}:.*$", f"{key}: {value}", text)
        assert n == 1, key
    return text


def solver_text(max_iter: int) -> str:
    return edit(
        (SEED / "alpha_solver.prototxt").read_text(),
        max_iter=max_iter, test_interval=10, display=1, snapshot=max_iter // 2,
    )  # fmt: skip


def net_text() -> str:
    """The seed's net named with a markup payload (the log prints "Solving <name>")."""
    return (
        (SEED / "alpha_net.prototxt").read_text().replace('name: "alpha"', f'name: "{XSS_NET}"', 1)
    )


def first_image(label: str) -> tuple[str, bytes]:
    """The label's first image by name (the split sends each label's first image to
    training)."""
    with tarfile.open(ALPHABET) as tar:
        names = sorted(
            m.name for m in tar.getmembers()
            if m.isfile() and m.name.endswith(".png") and m.name.split("/")[-2] == label
        )  # fmt: skip
        member = tar.extractfile(names[0])
        assert member is not None
        return names[0].rsplit("/", 1)[-1], member.read()


class Api:
    """The REST API as one user (HTTP Basic), for checks beside the browser."""

    def __init__(self, base: str, username: str, password: str = PASSWORD) -> None:
        self.base = base
        self.auth = (username, password)

    def get(self, path: str) -> Any:
        response = requests.get(self.base + path, auth=self.auth, timeout=60)
        assert response.status_code == 200, response.text
        return response.json()

    def post(self, path: str, **kwargs: Any) -> Any:
        response = requests.post(self.base + path, auth=self.auth, timeout=60, **kwargs)
        assert response.status_code in (200, 201), response.text
        return response.json()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with LiveServer(tmp_path_factory.mktemp("web"), workers=1, env=SERVER_ENV) as srv:
        yield srv


def sign_up(page: Any, username: str) -> None:
    page.get_by_role("link", name="Sign up").click()
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    page.wait_for_url("**/app/#/datafiles")


def heading(page: Any) -> Any:
    return page.locator("#main h1")


def test_alphabet_flow_in_the_browser(server: LiveServer, web_factory: Any) -> None:
    from playwright.sync_api import expect

    web = web_factory(server.url)
    page = web.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    web.open_app(page)
    expect(heading(page)).to_have_text("Sign in")
    web.shot(page, "signin")
    sign_up(page, "alice")
    api = Api(server.url, "alice")

    # Datafile: upload with progress.
    page.get_by_label("Archive (a folder per label, or a LevelDB/LMDB)").set_input_files(ALPHABET)
    page.get_by_role("button", name="Upload").click()
    expect(page.get_by_role("progressbar", name="Upload progress")).to_have_attribute("value", "1")
    row = page.locator("tbody tr").filter(has_text="alphabet.tar.gz")
    expect(row.locator(".state")).to_have_text("finished_successfully", timeout=TRAIN_MS)
    expect(row).to_contain_text("180")
    web.shot(page, "datafiles")

    # Dataset named with markup: shown as text.
    page.get_by_role("link", name="Datasets").click()
    page.get_by_label("Name (optional)").fill(XSS_NAME)
    page.get_by_label("Training split (%)").fill("70")
    page.get_by_role("button", name="Create dataset").click()
    expect(heading(page)).to_have_text(f"Dataset {XSS_NAME}")
    labels = page.locator("#main tbody tr")
    expect(labels).to_have_count(37, timeout=TRAIN_MS)  # 36 labels + the total
    expect(labels.filter(has_text=re.compile(r"^W"))).to_have_text(re.compile(r"W\s*3\s*2"))
    expect(labels.last).to_have_text(re.compile(r"All\s*108\s*72"))
    web.shot(page, "dataset")
    page.get_by_role("link", name="Datasets").click()
    expect(page.get_by_role("link", name=XSS_NAME)).to_be_visible()
    assert page.locator("#main img, #main script").count() == 0

    # Solver pasted from the seed's prototxt (fewer iterations; a markup payload as net name).
    page.get_by_role("link", name="Solvers").click()
    page.get_by_label("Solver prototxt (solver.prototxt)", exact=True).fill(solver_text(50))
    page.get_by_label("Net prototxt (train/test net)", exact=True).fill(net_text())
    page.get_by_role("button", name="Create solver").click()
    expect(page.locator("#main tbody tr")).to_have_count(1)
    web.shot(page, "solvers")

    # Train; the loss plot gains points while the job runs.
    page.get_by_role("link", name="Train it").click()
    page.get_by_role("button", name="Start training").click()
    page.wait_for_url(re.compile(r".*#/jobs/training-job.*"))
    job_id = page.url.split("#/jobs/")[1].replace("%3A", ":").replace("%7E", "~")
    page.wait_for_function(LOSS_GROWS_WHILE_TRAINING, polling=200, timeout=TRAIN_MS)
    web.shot(page, "job-training")
    state = page.locator("#main dl.facts .state").first
    expect(state).to_have_text("finished_successfully", timeout=TRAIN_MS)
    expect(page.locator("#evaluation")).to_contain_text("Accuracy")

    # The plots hold the job's metrics, every test output included; the evaluation is shown.
    metrics = api.get(f"/training-jobs/{job_id}/metrics")
    status = api.get(f"/training-jobs/{job_id}/status")
    page.wait_for_function(
        "n => Chart.getChart('loss-chart').data.datasets[0].data.length === n",
        arg=len(metrics["train"]["loss"]),
    )
    plotted = page.evaluate(
        """() => ({
          loss: Chart.getChart('loss-chart').data.datasets[0].data,
          lr: Chart.getChart('lr-chart').data.datasets[0].data,
          tests: Chart.getChart('test-chart').data.datasets.map((d) => [d.label, d.data]),
        })"""
    )
    assert [p["x"] for p in plotted["loss"]] == metrics["train"]["iteration"]
    assert [p["y"] for p in plotted["loss"]] == pytest.approx(metrics["train"]["loss"])
    assert [p["y"] for p in plotted["lr"]] == pytest.approx(metrics["train"]["lr"])
    outputs = metrics["test"]["outputs"]
    assert sorted(label for label, _ in plotted["tests"]) == sorted(outputs) == ["accuracy", "loss"]
    for label, data in plotted["tests"]:
        assert [p["y"] for p in data] == pytest.approx(outputs[label])
        assert [p["x"] for p in data] == metrics["test"]["iteration"]
    accuracy = status["evaluation"]["accuracy"]
    expect(page.locator("#evaluation")).to_contain_text(f"{accuracy * 100:.1f} %")
    expect(page.locator("#main")).to_contain_text("alpha_iter_50.caffemodel")

    # The model downloads (through the token, as a file).
    with page.expect_download() as download:
        page.get_by_role("button", name="Download model").click()
    assert download.value.suggested_filename == "model.caffemodel"
    model = requests.get(
        f"{server.url}/training-jobs/{job_id}/model", auth=api.auth, timeout=60
    ).content
    assert Path(download.value.path()).read_bytes() == model

    # The log tail shows the net's name as text.
    page.wait_for_function(
        "text => document.getElementById('log').textContent.includes(text)",
        arg=f"Solving {XSS_NET}",
    )
    assert page.locator("#log *").count() == 0
    web.shot(page, "job")

    # A second, shorter job to compare with (made over the API), then both on one plot.
    solver2 = api.post(
        "/solvers",
        json={
            "dataset-id": status_dataset(api, job_id),
            "specification": solver_text(10),
            "specification-net": net_text(),
        },
    )
    job2 = api.post("/training-jobs", json={"solver-id": solver2["id"]})
    page.get_by_role("link", name="Training jobs").click()
    for job in (job_id, job2["id"]):
        page.get_by_role("checkbox", name=f"Compare job …{job[-8:]}").check()
    page.get_by_role("button", name="Compare selected").click()
    page.wait_for_function(
        """() => {
          const chart = Chart.getChart('compare-loss-chart');
          return chart && chart.data.datasets.length === 2 &&
            chart.data.datasets[0].data.length > 0 && chart.data.datasets[1].data.length === 10;
        }""",
        timeout=TRAIN_MS,
    )
    web.shot(page, "compare")
    page.get_by_role("link", name="Training jobs").click()
    expect(page.locator("#main tbody .state")).to_have_text(
        ["finished_successfully"] * 2, timeout=TRAIN_MS
    )
    web.shot(page, "jobs")

    # Classifier from the finished job; drop an image, read its top-1 label and top-5 bars.
    page.goto(f"{server.url}/app/#/jobs/{job_id}")
    page.get_by_role("link", name="Create a classifier").click()
    page.get_by_label("Name (optional)").fill("alphabet letters")
    page.get_by_label("Deploy prototxt", exact=True).fill(
        (SEED / "classifier.prototxt").read_text()
    )
    page.get_by_label("Image width (px, empty: the net's)").fill("28")
    page.get_by_label("Image height (px, empty: the net's)").fill("28")
    page.get_by_role("button", name="Create classifier").click()
    expect(heading(page)).to_have_text("Classify with alphabet letters")
    name, png = first_image(DROPPED_LABEL)
    transfer = page.evaluate_handle(MAKE_DROP, [base64.b64encode(png).decode(), name])
    page.dispatch_event("#dropzone", "dragover", {"dataTransfer": transfer})
    page.dispatch_event("#dropzone", "drop", {"dataTransfer": transfer})
    result = page.locator(".result").first
    expect(result.locator(".top1")).to_have_text(DROPPED_LABEL, timeout=TRAIN_MS)
    expect(result.locator("ol.top5 meter")).to_have_count(5)
    expect(result.locator("ol.top5 li").first).to_contain_text(DROPPED_LABEL)
    web.shot(page, "classify")
    page.get_by_role("link", name="Classifiers").click()
    expect(page.get_by_role("link", name="alphabet letters")).to_be_visible()
    web.shot(page, "classifiers")

    # Workers and queue; the account with this tab's token.
    page.get_by_role("link", name="Workers & queue").click()
    expect(page.locator("#main tbody").first).to_contain_text("torch")
    expect(page.locator("#main")).to_contain_text("Nothing queued or running.")
    web.shot(page, "workers")
    page.get_by_role("link", name="Account").click()
    expect(page.locator("#main")).to_contain_text("(this session)")
    web.shot(page, "account")
    assert page.evaluate("window.__xss") is None


def status_dataset(api: Api, job_id: str) -> str:
    return api.get(f"/training-jobs/{job_id}")["dataset-id"]


def test_second_user_sees_none_of_the_first_users_things(
    server: LiveServer, web_factory: Any
) -> None:
    from playwright.sync_api import expect

    requests.post(
        server.url + "/users", json={"username": "carol", "password": PASSWORD}, timeout=30
    ).raise_for_status()
    carol = Api(server.url, "carol")
    with open(ALPHABET, "rb") as f:
        datafile = carol.post("/datafiles", files={"file": ("carol-secret.tar.gz", f)})
    dataset = carol.post(
        "/datasets",
        json={
            "name": "carol's secret dataset",
            "training": {"datafile-id": datafile["id"], "split-percentage": 0.7},
            "testing": {"datafile-id": datafile["id"], "split-percentage": 0.3},
        },
    )

    web = web_factory(server.url)
    page = web.new_page()
    web.open_app(page)
    sign_up(page, "dave")
    checks = {
        "Datafiles": "No datafiles yet",
        "Datasets": "No datasets yet.",
        "Solvers": "No solvers yet.",
        "Training jobs": "No training jobs yet.",
        "Classifiers": "No classifiers yet.",
    }
    for link_name, empty in checks.items():
        page.get_by_role("link", name=link_name).click()
        expect(page.locator("#main")).to_contain_text(empty)
        assert "carol" not in page.locator("#main").inner_text()
    page.get_by_role("link", name="Workers & queue").click()
    expect(page.locator("#main")).to_contain_text("Nothing queued or running.")
    assert datafile["id"] not in page.locator("#main").inner_text()
    # Carol's dataset page, by its address: not found for dave.
    page.goto(f"{server.url}/app/#/datasets/{dataset['id']}")
    expect(page.locator("#main [role=alert]")).to_contain_text("no dataset with id")
    assert "secret" not in page.locator("#main").inner_text()


def test_solver_parse_error_points_at_line_and_column(server: LiveServer, web_factory: Any) -> None:
    from playwright.sync_api import expect

    web = web_factory(server.url)
    page = web.new_page()
    web.open_app(page)
    sign_up(page, "erin")
    erin = Api(server.url, "erin")
    with open(ALPHABET, "rb") as f:
        datafile = erin.post("/datafiles", files={"file": ("alphabet.tar.gz", f)})
    erin.post(
        "/datasets",
        json={
            "training": {"datafile-id": datafile["id"], "split-percentage": 0.7},
            "testing": {"datafile-id": datafile["id"], "split-percentage": 0.3},
        },
    )
    page.get_by_role("link", name="Solvers").click()
    broken = net_text().replace("num_output: 20", "num_output: twenty", 1)
    line = next(i for i, text in enumerate(broken.split("\n"), 1) if "twenty" in text)
    page.get_by_label("Solver prototxt (solver.prototxt)", exact=True).fill(solver_text(10))
    net = page.get_by_label("Net prototxt (train/test net)", exact=True)
    net.fill(broken)
    page.get_by_role("button", name="Create solver").click()
    error = page.locator("#solver-error")
    expect(error).to_contain_text(f"Net prototxt, line {line}, column ")
    expect(net).to_have_attribute("aria-invalid", "true")
    caret_line = net.evaluate("t => t.value.slice(0, t.selectionStart).split('\\n').length")
    assert caret_line == line
    web.shot(page, "solver-error")


def test_sign_out_revokes_the_token_and_no_cookie_holds_it(
    server: LiveServer, web_factory: Any
) -> None:
    from playwright.sync_api import expect

    web = web_factory(server.url)
    page = web.new_page()
    web.open_app(page)
    sign_up(page, "frank")
    token = page.evaluate("JSON.parse(sessionStorage.getItem('elasticthought.session')).token")
    auth = {"Authorization": f"Token {token}"}
    assert requests.get(server.url + "/users/me", headers=auth, timeout=30).status_code == 200
    assert page.context.cookies() == []
    page.get_by_role("button", name="Sign out").click()
    expect(heading(page)).to_have_text("Sign in")
    expect(page.locator("#notice")).to_contain_text("Signed out")
    assert requests.get(server.url + "/users/me", headers=auth, timeout=30).status_code == 401
    assert page.evaluate("sessionStorage.getItem('elasticthought.session')") is None
    # Signing in again works; a wrong password says so (and no browser login prompt).
    page.get_by_label("Username").fill("frank")
    page.get_by_label("Password").fill("wrong-password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#main [role=alert]")).to_contain_text("wrong username or password")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#who")).to_have_text("Signed in as frank")


def test_app_is_served_with_a_strict_content_security_policy(server: LiveServer) -> None:
    assert f"elasticthought: web app at {server.url}/app/\n" in server.log()
    root = requests.get(server.url + "/", allow_redirects=False, timeout=30)
    assert root.status_code == 302 and root.headers["Location"].endswith("/app/")
    for path in ("/app/", "/app/js/main.js", "/app/app.css", "/app/vendor/chart.js"):
        response = requests.get(server.url + path, timeout=30)
        assert response.status_code == 200, path
        csp = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "style-src 'self'" in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert (
        "javascript"
        in requests.get(server.url + "/app/js/main.js", timeout=30).headers["Content-Type"]
    )
    index = requests.get(server.url + "/app/", timeout=30).text
    assert "<script>" not in index and "style=" not in index
    missing = requests.get(server.url + "/app/no-such-file.js", timeout=30)
    assert missing.status_code == 404 and missing.json()["error"] == "Not Found"
    # The static files never use innerHTML / outerHTML / insertAdjacentHTML / document.write.
    static = Path(__file__).resolve().parents[2] / "elasticthought" / "web" / "static"
    for path in static.rglob("*.js"):
        text = path.read_text()
        assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write", text), path


def test_without_the_charting_library_the_app_says_so_and_cancel_and_delete_work(
    tmp_path: Path, web_factory: Any
) -> None:
    """ET_NODE_MODULES names an empty folder: no Chart.js to serve (as after a setup without
    npm); the job page shows a clear message in place of each plot and the rest works."""
    from playwright.sync_api import expect

    empty = tmp_path / "node_modules"
    empty.mkdir()
    env = {**SERVER_ENV, "ET_NODE_MODULES": str(empty)}
    with LiveServer(tmp_path / "srv", workers=0, env=env) as srv:
        assert requests.get(srv.url + "/app/vendor/chart.js", timeout=30).status_code == 404
        requests.post(
            srv.url + "/users", json={"username": "gina", "password": PASSWORD}, timeout=30
        ).raise_for_status()
        gina = Api(srv.url, "gina")
        with open(ALPHABET, "rb") as f:
            datafile = gina.post("/datafiles", files={"file": ("alphabet.tar.gz", f)})
        dataset = gina.post(
            "/datasets",
            json={
                "training": {"datafile-id": datafile["id"], "split-percentage": 0.7},
                "testing": {"datafile-id": datafile["id"], "split-percentage": 0.3},
            },
        )
        solver = gina.post(
            "/solvers",
            json={
                "dataset-id": dataset["id"],
                "specification": solver_text(10),
                "specification-net": net_text(),
            },
        )
        job = gina.post("/training-jobs", json={"solver-id": solver["id"]})
        web = web_factory(srv.url)
        page = web.new_page()
        web.open_app(page)
        page.get_by_label("Username").fill("gina")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url("**/app/#/jobs")
        page.goto(f"{srv.url}/app/#/jobs/{job['id']}")
        expect(page.locator(".chart-missing")).to_have_count(3)
        expect(page.locator(".chart-missing").first).to_contain_text(
            "(npm package chart.js) is not installed"
        )
        state = page.locator("#main dl.facts .state").first
        expect(state).to_have_text("pending")
        assert page.evaluate("typeof window.Chart") == "undefined"
        # Cancel, then delete (confirmed) from the job page.
        page.get_by_role("button", name="Cancel").click()
        expect(state).to_have_text("canceled")
        page.on("dialog", lambda dialog: dialog.accept())
        page.get_by_role("button", name="Delete").click()
        expect(page.locator("#notice")).to_have_text("Training job deleted.")
        expect(page.locator("#main")).to_contain_text("No training jobs yet.")
        assert (
            requests.get(
                f"{srv.url}/training-jobs/{job['id']}", auth=gina.auth, timeout=30
            ).status_code
            == 404
        )
        page.close()
