"""maildir-jmap: a JMAP server over an existing Maildir, next to Dovecot."""

__version__ = "0.1.0"
