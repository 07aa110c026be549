"""Reference performances: upload, alignment (child process), selectors, views."""
