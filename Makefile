# The two set-up commands of README.md. Both install what is missing first (scripts/setup.sh).
.PHONY: run test lint setup

run:    ## install everything, start Redis + Daphne + Celery, print the URL (Ctrl-C stops)
	bash scripts/run.sh

test:   ## install everything, lint (scripts/lint.sh), run tests/unit, tests/integration, tests/browser
	bash scripts/test.sh $(ARGS)

lint:   ## ruff, import-linter (the layers), ESLint; also part of `make test`
	bash scripts/setup.sh
	bash scripts/lint.sh

setup:  ## install only
	bash scripts/setup.sh
