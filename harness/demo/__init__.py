"""`make demo`: the whole product offline on tiny hosts (hubport and the study); see harness/demo/__main__.py."""
