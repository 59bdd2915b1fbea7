package jobs

// Summary says what the jobs program does, for its --help.
const Summary = `claims one event from the queue (BRPOPLPUSH into a claim list + lease),
processes it (sleeps its "wait" while heartbeating the lease), acks it and
exits 0; MAX_EVENTS events per run. Exit 0 also when there was nothing to
claim, 1 when Redis stayed unreachable or the configuration is invalid.`
