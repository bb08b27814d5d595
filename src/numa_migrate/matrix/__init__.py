"""The validation matrix: scenarios, the runner on two real hosts, and its report."""
