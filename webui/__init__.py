"""The browser app's static files (HTML, CSS, vanilla JS), shipped as package data."""
