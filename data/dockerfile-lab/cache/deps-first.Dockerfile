# The slow step comes before the code: editing app.py rebuilds only the last steps.
FROM python:3.11-slim
WORKDIR /app
COPY requirements.txt ./
# Stands in for `pip install -r requirements.txt` (nothing is downloaded here): byte-compiles
# the standard library, where python:3.11-slim keeps it; takes a few seconds, and depends on
# requirements.txt only.
RUN python -m compileall -f -q /usr/local/lib/python3.11
COPY app.py ./
CMD ["python", "app.py"]
