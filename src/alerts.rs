//! Alert e-mail: the outbox sender (lettre over SMTP) and deadline alerts.
