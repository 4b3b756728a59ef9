"""A Flask app with Flask-SQLAlchemy and Flask-Migrate (`flask --app flaskshape db upgrade`)."""
import os

from flask import Flask
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy

db = SQLAlchemy()
migrate = Migrate()


class Item(db.Model):
    __tablename__ = "items"
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.Text, nullable=False)
    note = db.Column(db.Text)


def create_app() -> Flask:
    app = Flask(__name__)
    url = os.environ.get("DATABASE_URL", "postgresql://localhost/flaskshape")
    app.config["SQLALCHEMY_DATABASE_URI"] = url.replace("postgresql://", "postgresql+psycopg://", 1)
    db.init_app(app)
    migrate.init_app(app, db, directory=os.path.join(os.path.dirname(__file__), "..", "migrations"))
    return app
