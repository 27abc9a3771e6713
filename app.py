"""taskqueue's Lambda entry point: wiring only (style.md). Code lives in chalicelib/."""

from chalicelib.handlers import observability
from chalicelib.handlers.artifact_api import artifact_bp
from chalicelib.handlers.auth_api import auth_bp
from chalicelib.handlers.events import events_bp
from chalicelib.handlers.function_url import App
from chalicelib.handlers.graph_api import graph_bp
from chalicelib.handlers.inspector import inspector_bp
from chalicelib.handlers.provisioning import provisioning_bp
from chalicelib.handlers.reference_api import reference_bp
from chalicelib.handlers.tasks_api import tasks_bp
from chalicelib.handlers.work_api import work_bp
from chalicelib.handlers.worker_info_api import worker_info_bp
from chalicelib.handlers.worker_manager_api import worker_manager_bp

# Chalice, also taking the events of a Lambda function URL (the stage setting `front_door`).
app = App(app_name="taskqueue", configure_logs=False)
observability.install(app)
app.register_blueprint(tasks_bp)
app.register_blueprint(work_bp)
app.register_blueprint(events_bp)
app.register_blueprint(graph_bp)
app.register_blueprint(artifact_bp)
app.register_blueprint(auth_bp)
app.register_blueprint(reference_bp)
app.register_blueprint(worker_info_bp)
app.register_blueprint(worker_manager_bp)
app.register_blueprint(provisioning_bp)
app.register_blueprint(inspector_bp)
