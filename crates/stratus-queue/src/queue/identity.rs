//! Where queues live: the endpoint of their URLs and the region and account of their
//! ARNs, and the conversions between names, URLs and ARNs.

use crate::error::QueueError;

use super::Queues;

/// Where queues live: the endpoint of their URLs and the region and account of
/// their ARNs.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    pub(crate) endpoint: String,
    pub(crate) region: String,
    pub(crate) account: String,
}

impl Identity {
    pub(crate) fn url(&self, name: &str) -> String {
        format!("{}/{}/{name}", self.endpoint, self.account)
    }

    pub(crate) fn arn(&self, name: &str) -> String {
        format!("arn:aws:sqs:{}:{}:{name}", self.region, self.account)
    }

    pub(crate) fn name_from_arn(&self, arn: &str) -> Option<String> {
        let parts: Vec<&str> = arn.split(':').collect();
        match parts.as_slice() {
            ["arn", _, "sqs", region, account, name]
                if *region == self.region && *account == self.account && !name.is_empty() =>
            {
                Some(name.to_string())
            }
            _ => None,
        }
    }

    pub(crate) fn name_from_url(&self, url: &str) -> Result<String, QueueError> {
        let invalid = || QueueError::InvalidAddress {
            url: url.to_string(),
        };
        let without_query = url.split(['?', '#']).next().unwrap_or_default();
        let path = match without_query.find("://") {
            Some(i) => {
                let rest = &without_query[i + 3..];
                rest.find('/').map(|j| &rest[j..]).unwrap_or_default()
            }
            None => without_query,
        };
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let [.., account, name] = segments.as_slice() else {
            return Err(invalid());
        };
        if *account != self.account {
            return Err(QueueError::QueueDoesNotExist {
                name: format!(
                    "{name} (account {account}; this server's queues are in account {})",
                    self.account
                ),
            });
        }
        Ok(name.to_string())
    }
}

impl Queues {
    /// The URL of a queue.
    pub fn url(&self, name: &str) -> String {
        self.identity.url(name)
    }

    /// The ARN of a queue.
    pub fn arn(&self, name: &str) -> String {
        self.identity.arn(name)
    }

    /// The queue name of an ARN of this server's region and account.
    pub fn name_from_arn(&self, arn: &str) -> Option<String> {
        self.identity.name_from_arn(arn)
    }

    /// The queue name of a queue URL: any URL whose path ends in
    /// `/{account}/{name}` (the host is not checked; clients reach us by many).
    pub fn name_from_url(&self, url: &str) -> Result<String, QueueError> {
        self.identity.name_from_url(url)
    }

    /// The account id of this server's queues.
    pub fn account(&self) -> &str {
        &self.identity.account
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use crate::error::QueueError;

    async fn urls_and_arns(f: Fixture) {
        assert_eq!(f.q.url("jobs"), "http://127.0.0.1:9000/123456789012/jobs");
        assert_eq!(f.q.arn("jobs"), "arn:aws:sqs:us-east-1:123456789012:jobs");
        assert_eq!(
            f.q.name_from_arn("arn:aws:sqs:us-east-1:123456789012:jobs")
                .as_deref(),
            Some("jobs")
        );
        assert_eq!(
            f.q.name_from_arn("arn:aws:sqs:eu-west-1:123456789012:jobs"),
            None
        );
        assert_eq!(
            f.q.name_from_arn("arn:aws:sns:us-east-1:123456789012:jobs"),
            None
        );
        for url in [
            "http://127.0.0.1:9000/123456789012/jobs",
            "https://sqs.us-east-1.amazonaws.com/123456789012/jobs",
            "http://other:1/prefix/123456789012/jobs/?x=1",
        ] {
            assert_eq!(f.q.name_from_url(url).unwrap(), "jobs", "{url}");
        }
        assert!(matches!(
            f.q.name_from_url("http://127.0.0.1:9000/999999999999/jobs"),
            Err(QueueError::QueueDoesNotExist { .. })
        ));
        assert!(matches!(
            f.q.name_from_url("jobs"),
            Err(QueueError::InvalidAddress { .. })
        ));
    }

    on_both_backends!(
        manual urls_and_arns,
    );
}
