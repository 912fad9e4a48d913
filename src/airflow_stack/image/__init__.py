"""What the image build runs before the package exists: your requirements.txt and packages.txt, and
the image's patches to Airflow."""
