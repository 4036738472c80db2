"""Real administrative geography: codes and names through time (:mod:`.codes`) and a city's outline, 구 and
법정동 (:mod:`.boundary`)."""

from features.places.boundary import CityPlaces, Place, city_places
from features.places.codes import Code, current, describe_retired, normalise

__all__ = ["CityPlaces", "Code", "Place", "city_places", "current", "describe_retired", "normalise"]
