"""The Prefect and MLflow UIs of the served stack, in headless Chromium: deployments and trained models show.

Needs Debian's `chromium` and `chromium-driver` (never a downloaded browser) and `selenium`.
Screenshots land in tests/artifacts/ (git-ignored) for a person to look at.
"""

import shutil
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.browser]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
CHILD_RUNS = ["rnn-100", "birnn-100", "bigru-100", "bilstm-2494", "baseline-tfidf", "ensemble-stacked"]
RENDER_TIMEOUT_S = 90  # the single-page apps fetch their data after loading; slow on a busy machine
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1800,1100",
]


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """Headless Chromium from the system packages, with a fresh profile."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.fail("browser tests need Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver); "
                    "deselect them with -m 'not browser'")
    profile = tmp_path_factory.mktemp("chromium-profile")
    options = Options()
    options.binary_location = chromium
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    # A driver path given: Selenium Manager (which would look online for drivers) is never run.
    service = Service(executable_path=driver, log_output=str(profile / "chromedriver.log"))
    chrome = webdriver.Chrome(service=service, options=options)
    chrome.set_page_load_timeout(RENDER_TIMEOUT_S)
    ARTIFACTS.mkdir(exist_ok=True)
    yield chrome
    chrome.quit()


def test_prefect_ui_lists_the_served_deployments(browser, served_training, served_deployments):
    from selenium.webdriver.common.by import By

    stack = served_deployments
    browser.get(f"{stack.prefect_url}/deployments")
    links = {}
    for name in ("train", "score"):
        deployment = stack.client.read_deployment_by_name(f"{name}/{name}")
        # The deployment's own link in the table, named as the deployment.
        links[name] = _wait_for(browser, By.CSS_SELECTOR, f"a[href$='/deployments/deployment/{deployment.id}']")
    _wait_for(browser, By.XPATH, "//*[normalize-space()='Every 15 minutes']")  # the score schedule
    browser.save_screenshot(str(ARTIFACTS / "prefect-deployments.png"))
    assert {name: link.text.strip() for name, link in links.items()} == {"train": "train", "score": "score"}


def test_mlflow_ui_shows_every_child_run_of_the_training(browser, served_training, served_deployments):
    from selenium.webdriver.common.by import By

    _, parent, children = served_training
    experiment = parent.info.experiment_id
    browser.get(f"{served_deployments.mlflow_url}/#/experiments/{experiment}/runs?workflowType=machine_learning")
    parent_cell = f"//a[contains(@href, '/runs/{parent.info.run_id}')]/ancestor::*[@role='gridcell'][1]"
    expand = _wait_for(browser, By.XPATH, f"{parent_cell}//button[contains(@data-component-id, 'runnamecellrenderer')]")
    _close_assistant(browser)
    expand.click()  # child runs are folded under their parent
    names = {}
    for run in children:
        link = _wait_for(browser, By.XPATH, f"//a[contains(@href, '/runs/{run.info.run_id}')]")
        names[run.info.run_name] = link.text.strip()
    browser.save_screenshot(str(ARTIFACTS / "mlflow-experiment.png"))
    assert sorted(names.values()) == sorted(CHILD_RUNS)
    assert names == {name: name for name in names}


def test_mlflow_ui_opens_the_experiment_as_a_training_project(browser, served_training, served_deployments):
    from mlflow import MlflowClient
    from selenium.webdriver.common.by import By

    _, parent, _ = served_training
    experiment = MlflowClient(served_deployments.mlflow_url, served_deployments.mlflow_url).get_experiment(parent.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    # The link reviewflow prints (`reviewflow up`, the comparison's run links) opens the model-training view.
    browser.get(f"{served_deployments.mlflow_url}/#/experiments/{experiment.experiment_id}?workflowType=machine_learning")
    _wait_for(browser, By.XPATH, f"//a[contains(@href, '/runs/{parent.info.run_id}')]")
    _wait_for(browser, By.XPATH, "//*[normalize-space()='Model registry']")
    shown = browser.find_element(By.TAG_NAME, "body").text
    browser.save_screenshot(str(ARTIFACTS / "mlflow-training-view.png"))
    assert "Judges" not in shown and "Prompts" not in shown  # the GenAI view's sections


def test_mlflow_run_page_shows_its_source_commit_and_registered_model(browser, served_training, served_deployments):
    from selenium.webdriver.common.by import By

    _, parent, children = served_training
    run = next(r for r in children if r.info.run_name == "baseline-tfidf")
    commit = run.data.tags["mlflow.source.git.commit"]
    browser.get(f"{served_deployments.mlflow_url}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}?workflowType=machine_learning")
    _wait_for(browser, By.XPATH, f"//*[normalize-space()='{commit[:7]}']")
    _wait_for(browser, By.XPATH, "//a[contains(@href, '/models/reviewflow-baseline/versions/')]")
    shown = browser.find_element(By.TAG_NAME, "body").text
    browser.save_screenshot(str(ARTIFACTS / "mlflow-run.png"))
    assert "reviewflow" in shown and "test_accuracy" in shown and "slice_length_over_300_accuracy" in shown


def test_mlflow_model_version_page_shows_its_model_card(browser, served_training, served_deployments):
    from mlflow import MlflowClient
    from selenium.webdriver.common.by import By

    _, _, children = served_training
    run = next(r for r in children if r.info.run_name == "baseline-tfidf")
    (version,) = MlflowClient(served_deployments.mlflow_url, served_deployments.mlflow_url).search_model_versions(f"run_id = '{run.info.run_id}'")
    browser.get(f"{served_deployments.mlflow_url}/#/models/{version.name}/versions/{version.version}?workflowType=machine_learning")
    _wait_for(browser, By.XPATH, f"//h1[normalize-space()='{version.name} version {version.version}']")
    for heading in ("Data", "Slices", "Gate", "Intended use", "Known limits"):
        _wait_for(browser, By.XPATH, f"//h2[normalize-space()='{heading}']")
    browser.save_screenshot(str(ARTIFACTS / "mlflow-model-version.png"))
    shown = browser.find_element(By.TAG_NAME, "body").text
    assert "English" in shown and f"Verdict: {version.tags['gate.verdict']}" in shown


def _wait_for(browser, by, locator):
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(browser, RENDER_TIMEOUT_S).until(ec.visibility_of_element_located((by, locator)))
    except TimeoutException:
        failed = ARTIFACTS / "failed-page.png"
        browser.save_screenshot(str(failed))
        text = browser.find_element("tag name", "body").text[:2000]
        pytest.fail(f"{locator} did not appear on {browser.current_url} within {RENDER_TIMEOUT_S} s ({failed}); the page says:\n{text}")


def _close_assistant(browser):
    """MLflow 3 opens an assistant panel beside the runs; closed, the table has the room."""
    from selenium.webdriver.common.by import By

    for button in browser.find_elements(By.CSS_SELECTOR, "button[aria-label='Close']"):
        if button.is_displayed():
            button.click()
