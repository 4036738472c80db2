"""Fine dust's parts beyond the domain spec (``features/domains/fine_dust.py``): grades, hourly windows,
tomorrow's weather forecast, hourly forecasts with advisories, and the serving adapters."""

POLLUTANTS = ("pm10", "pm25")  # the int feature ``pollutant`` of the fine_dust domain indexes this
ISSUE_HOUR = 17  # the national air-quality forecast's issue hour (KST): day d's forecast of day d+1
