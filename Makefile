# The two set-up commands of README.md. Both install what is missing first (scripts/setup.sh).
.PHONY: run test setup

run:    ## install everything, start Redis + Daphne + Celery, print the URL (Ctrl-C stops)
	bash scripts/run.sh

test:   ## install everything, run tests/unit, tests/integration, tests/browser
	bash scripts/test.sh $(ARGS)

setup:  ## install only
	bash scripts/setup.sh
