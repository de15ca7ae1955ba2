# The code is copied first: any edit to app.py breaks the cache for every step after COPY,
# so the slow step runs again.
FROM python:3.11-slim
WORKDIR /app
COPY . ./
# Stands in for `pip install -r requirements.txt` (nothing is downloaded here).
RUN python -m compileall -f -q /usr/local/lib/python3.11
CMD ["python", "app.py"]
