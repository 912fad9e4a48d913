"""Operations: the monitor, the log groomer and S3 task logs."""
