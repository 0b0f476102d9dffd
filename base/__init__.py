"""Below db and core: settings, time and errors. Imports neither."""
