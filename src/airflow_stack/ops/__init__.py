"""Operations: the monitor, the log groomer, S3 task logs and log files that cannot be written."""
