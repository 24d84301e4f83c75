"""Who may act: sign-in throttling today; the OAuth server and web sessions will join it."""
