"""The test instrument: reference endpoint, behaviour and judge profiles, demo generator,
stand-in reviewers and grader studies. Production code never imports it (import contract)."""
